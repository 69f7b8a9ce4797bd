//! One directory bucket as a JetStream key-value bucket (history 1).
//!
//! The bucket is opened (or created) on first use and the handle cached, so a
//! process can start while NATS is down. Revisions are the bucket stream's
//! sequences. `create` and `update` map to JetStream's expected-last-subject-
//! sequence check, so compare-and-swap is decided by the server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{
    Config as KvConfig, EntryErrorKind, Operation, PutErrorKind, Store, UpdateErrorKind,
};
use async_nats::jetstream::stream::StorageType;
use async_nats::jetstream::Context;
use async_nats::{Client, HeaderMap, HeaderValue};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{watch, OnceCell};

use super::consumer::{
    after_sequence, bounded, last_sequence, ordered, reconnect_marker, unavailable, until_reconnect,
};
use super::keys;
use crate::error::{DirectoryError, Result};
use crate::kv::{validate_key, Change, ChangeStream, Entry, Kv, Snapshot};
use crate::resume::{resuming, Backoff, Opener, Subscription};

/// Header naming a KV operation (absent for a put).
const KV_OPERATION: &str = "KV-Operation";
/// Header of server-generated markers (TTL expiry), which delete a key.
const MARKER_REASON: &str = "Nats-Marker-Reason";

/// Attempts of `create` when racing with deletions of the same key.
const CREATE_ATTEMPTS: usize = 3;

/// What a bucket handle needs from its directory.
pub(super) struct KvSettings {
    pub client: Client,
    pub jetstream: Context,
    pub bucket: String,
    pub replicas: usize,
    pub timeout: Duration,
    pub backoff: Backoff,
    /// The connection's reconnect count (see [`until_reconnect`]).
    pub reconnects: watch::Receiver<u64>,
}

/// A JetStream bucket handle.
#[derive(Clone)]
pub(super) struct NatsKv {
    inner: Arc<Inner>,
}

struct Inner {
    settings: KvSettings,
    store: OnceCell<Store>,
}

impl NatsKv {
    pub(super) fn new(settings: KvSettings) -> Self {
        NatsKv {
            inner: Arc::new(Inner {
                settings,
                store: OnceCell::new(),
            }),
        }
    }

    fn timeout(&self) -> Duration {
        self.inner.settings.timeout
    }

    /// The bucket, opened or created on first success.
    async fn store(&self) -> Result<&Store> {
        self.inner
            .store
            .get_or_try_init(|| async {
                let settings = &self.inner.settings;
                let js = &settings.jetstream;
                if let Ok(store) = js.get_key_value(settings.bucket.as_str()).await {
                    return Ok(store);
                }
                let config = KvConfig {
                    bucket: settings.bucket.clone(),
                    description: "keyfed directory bucket".to_owned(),
                    history: 1,
                    storage: StorageType::File,
                    num_replicas: settings.replicas,
                    ..KvConfig::default()
                };
                match js.create_key_value(config).await {
                    Ok(store) => Ok(store),
                    // Another process may have created it meanwhile.
                    Err(error) => js
                        .get_key_value(settings.bucket.as_str())
                        .await
                        .map_err(|_| unavailable("opening the bucket", error)),
                }
            })
            .await
    }

    /// After a failed revision check: `NotFound` if the key holds no live
    /// value, otherwise `WrongRevision`.
    async fn conflict(&self, store: &Store, nats_key: &str) -> Result<DirectoryError> {
        let entry = store
            .entry(nats_key)
            .await
            .map_err(|e| unavailable("reading the key", e))?;
        Ok(match entry {
            Some(entry) if entry.operation == Operation::Put => DirectoryError::WrongRevision,
            _ => DirectoryError::NotFound,
        })
    }

    async fn create_once(
        &self,
        store: &Store,
        nats_key: &str,
        value: &Bytes,
    ) -> Result<Option<u64>> {
        match store.update(nats_key, value.clone(), 0).await {
            Ok(revision) => return Ok(Some(revision)),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {}
            Err(e) => return Err(update_error(e)),
        }
        // The key has history: re-create it over its deletion marker.
        let entry = store
            .entry(nats_key)
            .await
            .map_err(|e| unavailable("reading the key", e))?;
        match entry {
            Some(entry) if entry.operation == Operation::Put => Err(DirectoryError::AlreadyExists),
            Some(entry) => match store.update(nats_key, value.clone(), entry.revision).await {
                Ok(revision) => Ok(Some(revision)),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(None),
                Err(e) => Err(update_error(e)),
            },
            None => Ok(None),
        }
    }

    /// Messages of the bucket after `after`, as changes.
    async fn subscribe(&self, after: u64) -> Result<Subscription<Change>> {
        let marker = reconnect_marker(&self.inner.settings.reconnects);
        let (messages, prefix) = bounded(self.timeout(), "watching a bucket", async {
            let store = self.store().await?;
            let filter = format!("{}>", store.prefix);
            let (messages, _) = ordered(
                &self.inner.settings.client,
                &store.stream,
                filter,
                after_sequence(after),
            )
            .await?;
            Ok((messages, store.prefix.clone()))
        })
        .await?;
        let changes = messages.filter_map(move |message| {
            let change = match message {
                Err(e) => Some(Err(unavailable("watching a bucket", e))),
                Ok(message) => match message.info() {
                    Err(e) => Some(Err(unavailable("reading message metadata", e))),
                    Ok(info) => decode_change(&prefix, &message, info.stream_sequence).map(Ok),
                },
            };
            futures::future::ready(change)
        });
        Ok(until_reconnect(changes, marker).boxed())
    }
}

/// The change a bucket message records, or `None` (logged) for a message
/// whose key this crate did not write.
fn decode_change(prefix: &str, message: &async_nats::Message, revision: u64) -> Option<Change> {
    let Some(key) = message.subject.strip_prefix(prefix).and_then(keys::decode) else {
        tracing::warn!(subject = %message.subject, "ignoring a bucket message with a foreign key");
        return None;
    };
    let deleted = message.headers.as_ref().is_some_and(|headers| {
        headers.get(MARKER_REASON).is_some()
            || headers
                .get(KV_OPERATION)
                .is_some_and(|op| matches!(op.as_str(), "DEL" | "PURGE"))
    });
    Some(Change {
        key,
        value: (!deleted).then(|| message.payload.clone()),
        revision,
    })
}

fn update_error(error: async_nats::jetstream::kv::UpdateError) -> DirectoryError {
    match error.kind() {
        UpdateErrorKind::InvalidKey => DirectoryError::Invalid("key rejected by NATS".into()),
        UpdateErrorKind::WrongLastRevision => DirectoryError::WrongRevision,
        _ => unavailable("writing the key", error),
    }
}

#[async_trait]
impl Kv for NatsKv {
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        validate_key(key)?;
        bounded(self.timeout(), "reading a key", async {
            let store = self.store().await?;
            let entry = store
                .entry(keys::encode(key))
                .await
                .map_err(|e| match e.kind() {
                    EntryErrorKind::InvalidKey => {
                        DirectoryError::Invalid("key rejected by NATS".into())
                    }
                    _ => unavailable("reading a key", e),
                })?;
            Ok(entry
                .filter(|entry| entry.operation == Operation::Put)
                .map(|entry| Entry {
                    value: entry.value,
                    revision: entry.revision,
                }))
        })
        .await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<u64> {
        validate_key(key)?;
        let nats_key = keys::encode(key);
        bounded(self.timeout(), "creating a key", async {
            let store = self.store().await?;
            for _ in 0..CREATE_ATTEMPTS {
                if let Some(revision) = self.create_once(store, &nats_key, &value).await? {
                    return Ok(revision);
                }
            }
            // Lost every race against concurrent writers of the key.
            Err(DirectoryError::AlreadyExists)
        })
        .await
    }

    async fn update(&self, key: &str, value: Bytes, expected_revision: u64) -> Result<u64> {
        validate_key(key)?;
        let nats_key = keys::encode(key);
        bounded(self.timeout(), "updating a key", async {
            let store = self.store().await?;
            match store.update(&nats_key, value, expected_revision).await {
                Ok(revision) => Ok(revision),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                    Err(self.conflict(store, &nats_key).await?)
                }
                Err(e) => Err(update_error(e)),
            }
        })
        .await
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<u64> {
        validate_key(key)?;
        bounded(self.timeout(), "writing a key", async {
            let store = self.store().await?;
            store
                .put(keys::encode(key), value)
                .await
                .map_err(|e| match e.kind() {
                    PutErrorKind::InvalidKey => {
                        DirectoryError::Invalid("key rejected by NATS".into())
                    }
                    _ => unavailable("writing a key", e),
                })
        })
        .await
    }

    async fn delete(&self, key: &str, expected_revision: Option<u64>) -> Result<u64> {
        validate_key(key)?;
        let nats_key = keys::encode(key);
        bounded(self.timeout(), "deleting a key", async {
            let store = self.store().await?;
            // Published by hand (not `Store::delete`) to learn the revision.
            let subject = format!(
                "{}{}",
                store.put_prefix.as_deref().unwrap_or(&store.prefix),
                nats_key
            );
            let mut headers = HeaderMap::new();
            headers.insert(KV_OPERATION, "DEL");
            if let Some(revision) = expected_revision {
                headers.insert(
                    NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                    HeaderValue::from(revision),
                );
            }
            let published = async {
                self.inner
                    .settings
                    .jetstream
                    .publish_with_headers(subject, headers, Bytes::new())
                    .await?
                    .await
            };
            match published.await {
                Ok(ack) => Ok(ack.sequence),
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    Err(self.conflict(store, &nats_key).await?)
                }
                Err(e) => Err(unavailable("deleting a key", e)),
            }
        })
        .await
    }

    async fn snapshot(&self, prefix: &str) -> Result<Snapshot> {
        bounded(self.timeout(), "reading a bucket snapshot", async {
            let store = self.store().await?;
            let before = last_sequence(&store.stream).await?;
            let (mut messages, pending) = ordered(
                &self.inner.settings.client,
                &store.stream,
                format!("{}>", store.prefix),
                DeliverPolicy::LastPerSubject,
            )
            .await?;
            if pending == 0 {
                // Nothing stored when the consumer was created, nor at `before`.
                return Ok(Snapshot {
                    entries: Vec::new(),
                    revision: before,
                });
            }
            // Every message of the initial batch has a sequence ≤ `after`.
            let after = last_sequence(&store.stream).await?;
            let mut entries = BTreeMap::new();
            while let Some(message) = messages.next().await {
                let message = message.map_err(|e| unavailable("reading a snapshot", e))?;
                let info = message
                    .info()
                    .map_err(|e| unavailable("reading message metadata", e))?;
                let (revision, remaining) = (info.stream_sequence, info.pending);
                if let Some(change) = decode_change(&store.prefix, &message, revision) {
                    if change.key.starts_with(prefix) {
                        match change.value {
                            Some(value) => entries.insert(change.key, Entry { value, revision }),
                            None => entries.remove(&change.key),
                        };
                    }
                }
                // Messages arrive in sequence order: all messages up to
                // `revision` have been applied, so the state is the bucket's
                // at `revision`.
                if remaining == 0 || revision >= after {
                    return Ok(Snapshot {
                        entries: entries.into_iter().collect(),
                        revision,
                    });
                }
            }
            Err(DirectoryError::Unavailable(
                "the snapshot consumer ended early".into(),
            ))
        })
        .await
    }

    async fn watch_from(&self, revision: u64) -> Result<ChangeStream> {
        let kv = self.clone();
        let open: Opener<Change> = Arc::new(move |after| {
            let kv = kv.clone();
            Box::pin(async move { kv.subscribe(after).await })
        });
        resuming(
            "directory watch",
            revision,
            self.inner.settings.backoff,
            open,
        )
        .await
    }
}

//! One embedded bucket: a sorted map of keys to their newest value or
//! deletion, persisted on every write, with a broadcast channel for watchers.
//!
//! Writes hold the bucket's lock while they persist and broadcast, so the
//! file, the revision counter and the order of broadcast changes agree. A
//! write runs on its own task: a caller that gives up (a timeout) cannot
//! leave memory and disk out of step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{broadcast, Mutex};

use super::persist::{self, BucketFile, StoredSlot};
use crate::error::{DirectoryError, Result};
use crate::kv::{validate_key, Change, ChangeStream, Entry, Kv, Snapshot};
use crate::resume::{resuming, Backoff, Opener, Subscription};

/// Changes buffered per watcher before it must re-read the bucket; small in
/// unit tests so that path is exercised.
const CHANNEL_CAPACITY: usize = if cfg!(test) { 8 } else { 1024 };

/// Re-subscription delays after a watcher fell behind.
pub(super) const BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(1),
    max: Duration::from_millis(50),
};

/// A key's newest state: a value, or a deletion (`None`).
#[derive(Debug, Clone)]
struct Slot {
    value: Option<Bytes>,
    revision: u64,
}

#[derive(Debug, Default)]
struct BucketState {
    revision: u64,
    slots: BTreeMap<String, Slot>,
}

/// The condition a write checks before applying.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// Unconditional.
    None,
    /// The key holds no live value.
    Absent,
    /// The key is at this revision (0: never written).
    Revision(u64),
}

struct Inner {
    path: PathBuf,
    state: Mutex<BucketState>,
    changes: broadcast::Sender<Change>,
}

/// An embedded bucket handle.
#[derive(Clone)]
pub(super) struct EmbeddedKv {
    inner: Arc<Inner>,
}

impl EmbeddedKv {
    /// Loads the bucket stored at `path` (empty if the file is missing).
    pub(super) fn open(path: PathBuf) -> Result<Self> {
        let file: BucketFile = persist::load(&path)?;
        let mut state = BucketState {
            revision: file.revision,
            slots: BTreeMap::new(),
        };
        for slot in file.entries {
            let value = match slot.value {
                Some(text) => Some(persist::decode_bytes(&path, &text)?),
                None => None,
            };
            state.revision = state.revision.max(slot.revision);
            state.slots.insert(
                slot.key,
                Slot {
                    value,
                    revision: slot.revision,
                },
            );
        }
        let (changes, _) = broadcast::channel(CHANNEL_CAPACITY);
        Ok(EmbeddedKv {
            inner: Arc::new(Inner {
                path,
                state: Mutex::new(state),
                changes,
            }),
        })
    }

    async fn write(&self, key: &str, value: Option<Bytes>, check: Check) -> Result<u64> {
        validate_key(key)?;
        let inner = self.inner.clone();
        let key = key.to_owned();
        tokio::spawn(async move { inner.write(key, value, check).await })
            .await
            .map_err(|e| DirectoryError::Unavailable(format!("embedded write failed: {e}")))?
    }
}

impl Inner {
    async fn write(&self, key: String, value: Option<Bytes>, check: Check) -> Result<u64> {
        let mut state = self.state.lock().await;
        let current = state.slots.get(&key);
        let live = current.is_some_and(|slot| slot.value.is_some());
        match check {
            Check::None => {}
            Check::Absent if live => return Err(DirectoryError::AlreadyExists),
            Check::Absent => {}
            Check::Revision(expected) => {
                if current.map_or(0, |slot| slot.revision) != expected {
                    return Err(if live {
                        DirectoryError::WrongRevision
                    } else {
                        DirectoryError::NotFound
                    });
                }
            }
        }
        let revision = state.revision + 1;
        let slot = Slot {
            value: value.clone(),
            revision,
        };
        let previous = state.slots.insert(key.clone(), slot);
        state.revision = revision;
        if let Err(error) = self.persist(&state).await {
            match previous {
                Some(previous) => state.slots.insert(key, previous),
                None => state.slots.remove(&key),
            };
            state.revision = revision - 1;
            return Err(error);
        }
        // No receiver is fine: nobody is watching.
        let _ = self.changes.send(Change {
            key,
            value,
            revision,
        });
        Ok(revision)
    }

    async fn persist(&self, state: &BucketState) -> Result<()> {
        let file = BucketFile {
            revision: state.revision,
            entries: state
                .slots
                .iter()
                .map(|(key, slot)| StoredSlot {
                    key: key.clone(),
                    value: slot.value.as_deref().map(persist::encode_bytes),
                    revision: slot.revision,
                })
                .collect(),
        };
        persist::write_atomic(self.path.clone(), persist::to_bytes(&file)?).await
    }

    /// The changes after `after` still visible in the bucket (the newest per
    /// key), then every live change.
    async fn subscribe(&self, after: u64) -> Subscription<Change> {
        let (mut backlog, receiver) = {
            let state = self.state.lock().await;
            let backlog: Vec<Change> = state
                .slots
                .iter()
                .filter(|(_, slot)| slot.revision > after)
                .map(|(key, slot)| Change {
                    key: key.clone(),
                    value: slot.value.clone(),
                    revision: slot.revision,
                })
                .collect();
            // Subscribing under the lock: no write slips between the two.
            (backlog, self.changes.subscribe())
        };
        backlog.sort_by_key(|change| change.revision);
        let live = futures::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(change) => Some((Ok(change), receiver)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "embedded watcher fell behind; re-reading");
                    None
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        futures::stream::iter(backlog.into_iter().map(Ok))
            .chain(live)
            .boxed()
    }
}

#[async_trait]
impl Kv for EmbeddedKv {
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        validate_key(key)?;
        let state = self.inner.state.lock().await;
        Ok(state.slots.get(key).and_then(|slot| {
            slot.value.as_ref().map(|value| Entry {
                value: value.clone(),
                revision: slot.revision,
            })
        }))
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<u64> {
        self.write(key, Some(value), Check::Absent).await
    }

    async fn update(&self, key: &str, value: Bytes, expected_revision: u64) -> Result<u64> {
        self.write(key, Some(value), Check::Revision(expected_revision))
            .await
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<u64> {
        self.write(key, Some(value), Check::None).await
    }

    async fn delete(&self, key: &str, expected_revision: Option<u64>) -> Result<u64> {
        let check = expected_revision.map_or(Check::None, Check::Revision);
        self.write(key, None, check).await
    }

    async fn snapshot(&self, prefix: &str) -> Result<Snapshot> {
        let state = self.inner.state.lock().await;
        let entries = state
            .slots
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter_map(|(key, slot)| {
                slot.value.as_ref().map(|value| {
                    let entry = Entry {
                        value: value.clone(),
                        revision: slot.revision,
                    };
                    (key.clone(), entry)
                })
            })
            .collect();
        Ok(Snapshot {
            entries,
            revision: state.revision,
        })
    }

    async fn watch_from(&self, revision: u64) -> Result<ChangeStream> {
        let inner = self.inner.clone();
        let open: Opener<Change> = Arc::new(move |after| {
            let inner = inner.clone();
            Box::pin(async move { Ok(inner.subscribe(after).await) })
        });
        resuming("embedded watch", revision, BACKOFF, open).await
    }
}

/// The file of `bucket` in a namespace directory.
pub(super) fn bucket_path(namespace_dir: &Path, bucket: &str) -> PathBuf {
    namespace_dir.join(format!("{bucket}.json"))
}

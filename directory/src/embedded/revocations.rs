//! The embedded revocation stream: an append-only log persisted on every
//! publish, trimmed to the configured maximum age, with a broadcast channel
//! for live readers.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{broadcast, Mutex};

use super::kv::BACKOFF;
use super::persist::{self, RevocationFile, StoredEvent};
use crate::directory::{RevocationEvent, RevocationStream};
use crate::error::{DirectoryError, Result};
use crate::resume::{resuming, Opener, Subscription};

const CHANNEL_CAPACITY: usize = if cfg!(test) { 8 } else { 1024 };

#[derive(Debug, Clone)]
struct Stored {
    sequence: u64,
    published_ms: u64,
    payload: Bytes,
}

#[derive(Debug, Default)]
struct LogState {
    sequence: u64,
    events: VecDeque<Stored>,
}

impl LogState {
    /// Drops the events older than `max_age`.
    fn trim(&mut self, now_ms: u64, max_age: Duration) {
        let max_age_ms = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
        let horizon = now_ms.saturating_sub(max_age_ms);
        while self
            .events
            .front()
            .is_some_and(|e| e.published_ms < horizon)
        {
            self.events.pop_front();
        }
    }
}

struct Inner {
    path: PathBuf,
    max_age: Duration,
    state: Mutex<LogState>,
    published: broadcast::Sender<RevocationEvent>,
}

/// Handle on the embedded revocation stream.
#[derive(Clone)]
pub(super) struct EmbeddedRevocations {
    inner: Arc<Inner>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl EmbeddedRevocations {
    /// Loads the stream stored at `path` (empty if missing), trimmed.
    pub(super) fn open(path: PathBuf, max_age: Duration) -> Result<Self> {
        let file: RevocationFile = persist::load(&path)?;
        let mut state = LogState {
            sequence: file.sequence,
            events: VecDeque::with_capacity(file.events.len()),
        };
        for event in file.events {
            state.sequence = state.sequence.max(event.sequence);
            state.events.push_back(Stored {
                sequence: event.sequence,
                published_ms: event.published_ms,
                payload: persist::decode_bytes(&path, &event.payload)?,
            });
        }
        state.trim(now_ms(), max_age);
        let (published, _) = broadcast::channel(CHANNEL_CAPACITY);
        Ok(EmbeddedRevocations {
            inner: Arc::new(Inner {
                path,
                max_age,
                state: Mutex::new(state),
                published,
            }),
        })
    }

    /// Appends an event; returns its sequence.
    pub(super) async fn publish(&self, payload: Bytes) -> Result<u64> {
        let inner = self.inner.clone();
        // On its own task, so a caller giving up cannot split memory and disk.
        tokio::spawn(async move { inner.publish(payload).await })
            .await
            .map_err(|e| DirectoryError::Unavailable(format!("embedded publish failed: {e}")))?
    }

    /// Events after `after`, then live ones.
    pub(super) async fn events_from(&self, after: u64) -> Result<RevocationStream> {
        let inner = self.inner.clone();
        let open: Opener<RevocationEvent> = Arc::new(move |after| {
            let inner = inner.clone();
            Box::pin(async move { Ok(inner.subscribe(after).await) })
        });
        resuming("embedded revocations", after, BACKOFF, open).await
    }
}

impl Inner {
    async fn publish(&self, payload: Bytes) -> Result<u64> {
        let mut state = self.state.lock().await;
        let now = now_ms();
        state.trim(now, self.max_age);
        let sequence = state.sequence + 1;
        state.events.push_back(Stored {
            sequence,
            published_ms: now,
            payload: payload.clone(),
        });
        state.sequence = sequence;
        let file = RevocationFile {
            sequence,
            events: state
                .events
                .iter()
                .map(|e| StoredEvent {
                    sequence: e.sequence,
                    published_ms: e.published_ms,
                    payload: persist::encode_bytes(&e.payload),
                })
                .collect(),
        };
        let persisted = match persist::to_bytes(&file) {
            Ok(bytes) => persist::write_atomic(self.path.clone(), bytes).await,
            Err(error) => Err(error),
        };
        if let Err(error) = persisted {
            state.events.pop_back();
            state.sequence = sequence - 1;
            return Err(error);
        }
        // No receiver is fine: nobody is listening.
        let _ = self.published.send(RevocationEvent { sequence, payload });
        Ok(sequence)
    }

    async fn subscribe(&self, after: u64) -> Subscription<RevocationEvent> {
        let (backlog, receiver) = {
            let state = self.state.lock().await;
            let backlog: Vec<RevocationEvent> = state
                .events
                .iter()
                .filter(|e| e.sequence > after)
                .map(|e| RevocationEvent {
                    sequence: e.sequence,
                    payload: e.payload.clone(),
                })
                .collect();
            (backlog, self.published.subscribe())
        };
        let live = futures::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(event) => Some((Ok(event), receiver)),
                Err(
                    broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed,
                ) => None,
            }
        });
        futures::stream::iter(backlog.into_iter().map(Ok))
            .chain(live)
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_drops_only_old_events() {
        let mut state = LogState::default();
        for (sequence, published_ms) in [(1, 1_000), (2, 5_000), (3, 9_000)] {
            state.events.push_back(Stored {
                sequence,
                published_ms,
                payload: Bytes::new(),
            });
        }
        state.trim(10_000, Duration::from_secs(6));
        let kept: Vec<u64> = state.events.iter().map(|e| e.sequence).collect();
        assert_eq!(kept, vec![2, 3]);
    }
}

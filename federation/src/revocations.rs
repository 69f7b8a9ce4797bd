//! A process's revocation index, fed from the directory's revocation
//! stream.
//!
//! A follower task replays the stream from the start (`revocations_from(0)`:
//! the directory retains events as long as the longest token lifetime) and
//! then applies new events as they are published, decoding each payload as a
//! [`RevocationEvent`] (JSON) into a [`RevocationIndex`], so a check costs a
//! few hash look-ups. The directory's stream bridges NATS outages itself;
//! if opening it fails, or it ends, the follower re-opens it after the last
//! sequence applied. A second task prunes events that can no longer match a
//! live token. Both stop when the [`Revocations`] is dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::StreamExt;
use keyfed_directory::Directory;
use keyfed_shared::revocation::{RevocationEvent, RevocationIndex, TokenFacts};
use keyfed_shared::time::now_micros;

use crate::tasks::{Backoff, TaskGuard};

/// How often expired events are pruned.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Most events applied under one write lock.
const MAX_BATCH: usize = 1024;

#[derive(Default)]
struct Shared {
    index: RwLock<RevocationIndex>,
    /// The last stream sequence applied.
    sequence: AtomicU64,
    /// Whether the stream has been opened at least once.
    subscribed: AtomicBool,
}

/// Revocation events known to this process; see the module doc.
pub struct Revocations {
    shared: Arc<Shared>,
    _tasks: TaskGuard,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("sequence", &self.last_sequence())
            .field("subjects", &self.len())
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// Starts following the revocation stream of `dir`. Returns at once;
    /// the index fills in the background. Must be called within a Tokio
    /// runtime.
    pub fn start(dir: Arc<dyn Directory>) -> Arc<Self> {
        Self::start_with(dir, PRUNE_INTERVAL)
    }

    /// [`Revocations::start`] pruning every `prune_interval`.
    pub(crate) fn start_with(dir: Arc<dyn Directory>, prune_interval: Duration) -> Arc<Self> {
        let shared = Arc::new(Shared::default());
        let mut tasks = TaskGuard::default();
        tasks.push(tokio::spawn(follow(dir, shared.clone())));
        tasks.push(tokio::spawn(prune(shared.clone(), prune_interval)));
        Arc::new(Self {
            shared,
            _tasks: tasks,
        })
    }

    /// Whether a token with these facts is revoked by an event applied so
    /// far.
    pub fn is_revoked(&self, facts: &TokenFacts<'_>) -> bool {
        self.shared
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_revoked(facts)
    }

    /// Whether the stream has been opened: the replay of retained events is
    /// under way or done. Before that, every revocation is unknown.
    pub fn ready(&self) -> bool {
        self.shared.subscribed.load(Ordering::Acquire)
    }

    /// The sequence of the last event applied (0 before the first), for
    /// metrics.
    pub fn last_sequence(&self) -> u64 {
        self.shared.sequence.load(Ordering::Acquire)
    }

    /// Distinct revoked subjects held.
    pub fn len(&self) -> usize {
        self.shared
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Applies the stream's events to the index, forever.
async fn follow(dir: Arc<dyn Directory>, shared: Arc<Shared>) {
    let mut backoff = Backoff::default();
    loop {
        let after = shared.sequence.load(Ordering::Acquire);
        let stream = match dir.revocations_from(after).await {
            Ok(stream) => stream,
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(%error, after, ?delay, "cannot open the revocation stream; retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        backoff.reset();
        shared.subscribed.store(true, Ordering::Release);
        tracing::info!(after, "following the revocation stream");
        let mut batches = stream.ready_chunks(MAX_BATCH);
        while let Some(batch) = batches.next().await {
            let mut index = shared.index.write().unwrap_or_else(PoisonError::into_inner);
            let mut last = shared.sequence.load(Ordering::Acquire);
            for event in batch {
                if event.sequence <= last {
                    continue;
                }
                last = event.sequence;
                match serde_json::from_slice::<RevocationEvent>(&event.payload) {
                    Ok(decoded) => index.insert(decoded),
                    Err(error) => tracing::warn!(
                        sequence = event.sequence,
                        %error,
                        "skipping malformed revocation event"
                    ),
                }
            }
            shared.sequence.store(last, Ordering::Release);
        }
        tracing::warn!("the revocation stream ended; re-opening");
    }
}

/// Drops events that can no longer match a live token, every `interval`.
async fn prune(shared: Arc<Shared>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now_secs = now_micros() / 1_000_000;
        let mut index = shared.index.write().unwrap_or_else(PoisonError::into_inner);
        let before = index.len();
        index.prune(now_secs);
        let pruned = before - index.len();
        if pruned > 0 {
            tracing::debug!(pruned, left = index.len(), "pruned revocation events");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use keyfed_shared::ids::{AuditId, UserId};
    use keyfed_shared::revocation::RevocationSubject;

    use super::*;
    use crate::testutil::{assert_eventually, embedded};

    fn facts<'a>(audit: &'a [AuditId], user: &'a UserId) -> TokenFacts<'a> {
        TokenFacts {
            audit_ids: audit,
            user_id: user,
            project_id: None,
            domain_ids: [None, None],
            issued_at: 10,
        }
    }

    fn event(subject: RevocationSubject, expires_at: i64) -> Bytes {
        let event = RevocationEvent {
            subject,
            issued_before: 100,
            expires_at,
        };
        Bytes::from(serde_json::to_vec(&event).unwrap())
    }

    #[tokio::test]
    async fn replays_follows_and_skips_malformed_events() {
        let (_tmp, dir) = embedded();
        let alice = UserId::new("alice");
        let bob = UserId::new("bob");
        let far = now_micros() / 1_000_000 + 3600;
        dir.publish_revocation(event(RevocationSubject::User(alice.clone()), far))
            .await
            .unwrap();
        dir.publish_revocation(Bytes::from_static(b"not json"))
            .await
            .unwrap();
        let revocations = Revocations::start(dir.clone());
        let audit = [AuditId::new("a")];
        assert_eventually!(revocations.is_revoked(&facts(&audit, &alice)));
        assert!(revocations.ready());
        assert!(!revocations.is_revoked(&facts(&audit, &bob)));
        dir.publish_revocation(event(RevocationSubject::User(bob.clone()), far))
            .await
            .unwrap();
        assert_eventually!(revocations.is_revoked(&facts(&audit, &bob)));
        assert_eq!(revocations.last_sequence(), 3);
        assert_eq!(revocations.len(), 2);
    }

    #[tokio::test]
    async fn expired_events_are_pruned() {
        let (_tmp, dir) = embedded();
        let alice = UserId::new("alice");
        dir.publish_revocation(event(RevocationSubject::User(alice.clone()), 1))
            .await
            .unwrap();
        let revocations = Revocations::start_with(dir.clone(), Duration::from_millis(20));
        assert_eventually!(revocations.last_sequence() == 1);
        assert_eventually!(revocations.is_empty());
    }
}

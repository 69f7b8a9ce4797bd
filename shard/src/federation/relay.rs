//! The membership relay: drains the store's membership outbox into the
//! directory's membership index (user → shards holding their assignments).
//!
//! For each pending entry it takes whether the user still holds an
//! assignment here (read with the entry, from the store's current state),
//! adds or removes this shard in the user's index entry by compare-and-swap
//! (re-reading on a conflict, so shards never clobber each other), and only
//! then removes the entry — at the version it read, so a change made
//! meanwhile stays pending. Delivery is idempotent: a crash between the
//! directory write and the removal replays the entry, which finds the index
//! already right.
//!
//! The relay runs one pass at start (entries left by a crash or an outage),
//! one after every [`Relay::poke`], and one every [`POLL`] in case a poke
//! was missed. A failing pass (directory or store down) is retried with
//! back-off; nothing is removed that was not delivered.

use crate::state::Shard;
use crate::store::{Store, StoreError};
use futures::stream::{self, TryStreamExt};
use keyfed_directory::{DirectoryError, Kv};
use keyfed_shared::federation::membership;
use keyfed_shared::ids::{ShardId, UserId};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// How often the relay looks at the outbox without being poked.
pub const POLL: Duration = Duration::from_secs(2);
/// Entries read per store round trip.
const BATCH: usize = 256;
/// Index entries written at once.
const CONCURRENCY: usize = 16;
/// First and longest wait after a failed pass.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long a grant waits for the index to show it, so that a listing made
/// right after the grant answers finds it (as Keystone's would).
const GRANT_FLUSH: Duration = Duration::from_secs(2);

/// Why a pass stopped; the entries it did not deliver stay pending.
#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error("reading or clearing the outbox: {0}")]
    Store(#[from] StoreError),
    #[error("writing the membership index: {0}")]
    Directory(#[from] DirectoryError),
}

/// The handle shared by the relay task and the request handlers.
#[derive(Debug)]
pub struct Relay {
    wake: Notify,
    /// Pokes so far; a pass covers every poke made before it started.
    requested: AtomicU64,
    /// The pokes covered by the last pass that succeeded.
    delivered: watch::Sender<u64>,
    /// Whether the last pass failed (the directory or the store is down).
    failing: AtomicBool,
}

impl Default for Relay {
    fn default() -> Self {
        Self {
            wake: Notify::new(),
            requested: AtomicU64::new(0),
            delivered: watch::Sender::new(0),
            failing: AtomicBool::new(false),
        }
    }
}

impl Relay {
    /// Asks for a pass soon: call after a write to assignments committed.
    /// Returns the poke's number.
    pub fn poke(&self) -> u64 {
        let n = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        n
    }

    /// Pokes, then waits until a pass that started after the poke delivered
    /// the outbox, for at most `limit`; returns whether it did. Returns at
    /// once while the relay is failing: the change is durable in the outbox
    /// and will be delivered when the directory is back.
    pub async fn flush(&self, limit: Duration) -> bool {
        let mut delivered = self.delivered.subscribe();
        let n = self.poke();
        if self.failing.load(Ordering::SeqCst) {
            return false;
        }
        let reached = tokio::time::timeout(limit, delivered.wait_for(|d| *d >= n))
            .await
            .is_ok_and(|r| r.is_ok());
        reached
    }

    /// Runs passes until the task is aborted.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>, index: Arc<dyn Kv>, me: ShardId) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let covered = self.requested.load(Ordering::SeqCst);
            match pass(store.as_ref(), index.as_ref(), &me).await {
                Ok(delivered) => {
                    if delivered > 0 {
                        tracing::debug!(delivered, "membership outbox delivered");
                    }
                    if self.failing.swap(false, Ordering::SeqCst) {
                        tracing::info!("membership outbox delivering again");
                    }
                    self.delivered.send_if_modified(|d| {
                        let advance = covered > *d;
                        *d = (*d).max(covered);
                        advance
                    });
                    backoff = MIN_BACKOFF;
                    let _ = tokio::time::timeout(POLL, self.wake.notified()).await;
                }
                Err(e) => {
                    if !self.failing.swap(true, Ordering::SeqCst) {
                        tracing::warn!(error = %e, "membership outbox not delivered; retrying");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

impl Shard {
    /// After a write that changed assignments committed: has the relay
    /// deliver it soon (federated shards).
    pub fn memberships_changed(&self) {
        if let Some(f) = &self.federation {
            f.relay.poke();
        }
    }

    /// After a grant committed: waits, for a bounded time, until the
    /// membership index shows it. The grant is durable either way.
    pub async fn membership_granted(&self) {
        if let Some(f) = &self.federation {
            if !f.relay.flush(GRANT_FLUSH).await {
                tracing::debug!("grant not yet in the membership index; the relay will deliver it");
            }
        }
    }
}

/// Delivers every pending entry; returns how many it removed.
async fn pass(store: &dyn Store, index: &dyn Kv, me: &ShardId) -> Result<u64, PassError> {
    let mut removed = 0;
    loop {
        let batch = store.outbox_pending(BATCH).await?;
        if batch.is_empty() {
            return Ok(removed);
        }
        stream::iter(batch.iter().map(Ok::<_, PassError>))
            .try_for_each_concurrent(CONCURRENCY, |e| async move {
                set_membership(index, &e.user_id, me, e.holds_assignments).await?;
                Ok(())
            })
            .await?;
        // Entries that changed meanwhile stay, and come back in the next
        // batch with their new state.
        removed += store.outbox_remove(&batch).await?;
    }
}

/// Puts `me` in `user`'s index entry (or takes it out), by compare-and-swap;
/// an entry left empty is deleted. Conflicts re-read and retry; other
/// errors are returned.
pub async fn set_membership(
    index: &dyn Kv,
    user: &UserId,
    me: &ShardId,
    member: bool,
) -> Result<(), DirectoryError> {
    let key = membership::key(user);
    loop {
        let current = index.get(&key).await?;
        let mut shards = match &current {
            Some(entry) => membership::decode(&entry.value).unwrap_or_else(|e| {
                tracing::error!(user = %user, error = %e, "unreadable membership entry; rewriting it");
                BTreeSet::new()
            }),
            None => BTreeSet::new(),
        };
        let changed = if member {
            shards.insert(me.clone())
        } else {
            shards.remove(me)
        };
        if !changed && (current.is_none() || !shards.is_empty()) {
            return Ok(());
        }
        let written = match (&current, shards.is_empty()) {
            (None, true) => return Ok(()),
            (None, false) => index
                .create(&key, membership::encode(&shards).into())
                .await
                .map(drop),
            (Some(entry), true) => index.delete(&key, Some(entry.revision)).await.map(drop),
            (Some(entry), false) => index
                .update(&key, membership::encode(&shards).into(), entry.revision)
                .await
                .map(drop),
        };
        match written {
            Ok(()) => return Ok(()),
            Err(
                DirectoryError::WrongRevision
                | DirectoryError::AlreadyExists
                | DirectoryError::NotFound,
            ) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Rebuilds this shard's part of the membership index: queues in the
/// outbox every user holding an assignment here and every user whose index
/// entry names this shard, so the relay re-derives each entry (adding this
/// shard where it is missing, removing it where it is stale). Returns how
/// many users were queued; the shard's relay delivers them (at once if it
/// runs, else when it next starts).
pub async fn reindex(store: &dyn Store, index: &dyn Kv, me: &ShardId) -> Result<u64, ReindexError> {
    let snapshot = index.snapshot("").await?;
    let named: Vec<UserId> = snapshot
        .entries
        .iter()
        .filter(|(_, entry)| membership::decode(&entry.value).is_ok_and(|s| s.contains(me)))
        .map(|(key, _)| UserId::new(key.as_str()))
        .collect();
    Ok(store.outbox_requeue(&named).await?)
}

/// Why [`reindex`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    /// Reading the index.
    #[error("reading the membership index: {0}")]
    Directory(#[from] DirectoryError),
    /// Queueing in the outbox.
    #[error("queueing in the membership outbox: {0}")]
    Store(#[from] StoreError),
}

/// The shards `user`'s index entry names (empty when there is none).
pub async fn shards_of(index: &dyn Kv, user: &UserId) -> Result<BTreeSet<ShardId>, DirectoryError> {
    Ok(match index.get(&membership::key(user)).await? {
        Some(entry) => membership::decode(&entry.value).unwrap_or_else(|e| {
            tracing::warn!(user = %user, error = %e, "unreadable membership entry");
            BTreeSet::new()
        }),
        None => BTreeSet::new(),
    })
}

#[cfg(test)]
mod tests;

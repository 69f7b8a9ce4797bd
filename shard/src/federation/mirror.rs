//! The shard's mirror of the federation's global data. The directory's
//! global bucket is the source of truth for domains, roles, implied roles,
//! regions, services and endpoints; the shard copies every change into its
//! own store — so its foreign keys (a project's domain, an assignment's
//! role) hold locally and a deleted domain or role cascades locally as
//! Keystone cascades it — then reloads its in-memory snapshot.
//!
//! A snapshot is applied in dependency order (domains, roles, implications,
//! regions parents first, services, endpoints); changes are applied in
//! revision order as the watch delivers them. The revision applied is
//! published so a writer can wait until its own write is visible locally.

use crate::state::Shard;
use crate::store::{Store, StoreError, StoreResult};
use futures::StreamExt;
use keyfed_directory::{Bucket, Directory};
use keyfed_shared::federation::GlobalEntity;
use keyfed_shared::ids::{DomainId, EndpointId, RegionId, RoleId, ServiceId};
use keyfed_shared::model::ImpliedRole;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Weak;
use std::time::Duration;
use tokio::sync::watch;

/// How far the mirror has got.
pub struct MirrorProgress {
    applied: AtomicU64,
    loaded: AtomicBool,
    notify: watch::Sender<u64>,
}

impl Default for MirrorProgress {
    fn default() -> Self {
        Self {
            applied: AtomicU64::new(0),
            loaded: AtomicBool::new(false),
            notify: watch::channel(0).0,
        }
    }
}

impl MirrorProgress {
    /// Whether the directory's snapshot has been applied since start.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The last global-bucket revision applied to the store.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    fn set(&self, revision: u64) {
        self.applied.fetch_max(revision, Ordering::AcqRel);
        self.notify.send_replace(self.applied());
    }

    /// Waits until `revision` is applied, or `timeout` passes.
    pub async fn wait_for(&self, revision: u64, timeout: Duration) -> bool {
        let mut rx = self.notify.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Creates or replaces one entity in the store.
async fn upsert(store: &dyn Store, entity: &GlobalEntity) -> StoreResult<()> {
    match entity {
        GlobalEntity::Domain(d) => {
            if !store.update_domain(d).await? {
                store.create_domain(d).await?;
            }
        }
        GlobalEntity::Role(r) => {
            if !store.update_role(r).await? {
                store.create_role(r).await?;
            }
        }
        GlobalEntity::Implied(i) => {
            store.add_implied_role(i).await?;
        }
        GlobalEntity::Region(r) => {
            if !store.update_region(r).await? {
                store.create_region(r).await?;
            }
        }
        GlobalEntity::Service(s) => {
            if !store.update_service(s).await? {
                store.create_service(s).await?;
            }
        }
        GlobalEntity::Endpoint(e) => {
            if !store.update_endpoint(e).await? {
                store.create_endpoint(e).await?;
            }
        }
    }
    Ok(())
}

/// Deletes the entity stored under a global-bucket key.
async fn remove(store: &dyn Store, key: &str) -> StoreResult<()> {
    let mut parts = key.splitn(3, '/');
    let (kind, id, rest) = (parts.next(), parts.next(), parts.next());
    match (kind, id, rest) {
        (Some("domain"), Some(id), None) => store.delete_domain(&DomainId::new(id)).await.map(drop),
        (Some("role"), Some(id), None) => store.delete_role(&RoleId::new(id)).await.map(drop),
        (Some("implied"), Some(prior), Some(implied)) => store
            .remove_implied_role(&ImpliedRole {
                prior: RoleId::new(prior),
                implied: RoleId::new(implied),
            })
            .await
            .map(drop),
        (Some("region"), Some(id), None) => store.delete_region(&RegionId::new(id)).await.map(drop),
        (Some("service"), Some(id), None) => {
            store.delete_service(&ServiceId::new(id)).await.map(drop)
        }
        (Some("endpoint"), Some(id), None) => {
            store.delete_endpoint(&EndpointId::new(id)).await.map(drop)
        }
        _ => {
            tracing::warn!(key, "ignoring an unknown global key");
            Ok(())
        }
    }
}

fn rank(e: &GlobalEntity) -> u8 {
    match e {
        GlobalEntity::Domain(_) => 0,
        GlobalEntity::Role(_) => 1,
        GlobalEntity::Implied(_) => 2,
        GlobalEntity::Region(_) => 3,
        GlobalEntity::Service(_) => 4,
        GlobalEntity::Endpoint(_) => 5,
    }
}

/// Applies a snapshot's entities in dependency order; entities whose
/// reference is not applied yet (child regions) are retried after the rest.
async fn apply_snapshot(store: &dyn Store, mut entities: Vec<GlobalEntity>) -> StoreResult<()> {
    entities.sort_by_key(rank);
    loop {
        let mut deferred = Vec::new();
        let before = entities.len();
        for e in entities {
            match upsert(store, &e).await {
                Ok(()) => {}
                Err(StoreError::MissingReference(_)) => deferred.push(e),
                Err(other) => return Err(other),
            }
        }
        if deferred.is_empty() {
            return Ok(());
        }
        if deferred.len() == before {
            for e in &deferred {
                tracing::warn!(key = %e.key(), "global entry refers to a missing entity; skipped");
            }
            return Ok(());
        }
        entities = deferred;
    }
}

async fn load(shard: &Shard, dir: &dyn Directory) -> Result<u64, String> {
    let snapshot = dir
        .kv(Bucket::Global)
        .snapshot("")
        .await
        .map_err(|e| e.to_string())?;
    let entities = snapshot
        .entries
        .iter()
        .filter_map(
            |(key, entry)| match GlobalEntity::decode(key, &entry.value) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a malformed global entry");
                    None
                }
            },
        )
        .collect();
    apply_snapshot(shard.store.as_ref(), entities)
        .await
        .map_err(|e| e.to_string())?;
    shard.reload_global().await.map_err(|e| e.to_string())?;
    Ok(snapshot.revision)
}

async fn apply_change(shard: &Shard, key: &str, value: Option<&[u8]>) -> StoreResult<()> {
    match value {
        Some(bytes) => match GlobalEntity::decode(key, bytes) {
            Ok(entity) => upsert(shard.store.as_ref(), &entity).await,
            Err(e) => {
                tracing::warn!(error = %e, "skipping a malformed global entry");
                Ok(())
            }
        },
        None => {
            remove(shard.store.as_ref(), key).await?;
            // Deleting a domain or role may have removed assignments.
            shard.memberships_changed();
            Ok(())
        }
    }
}

/// Follows the global bucket into the shard's store until the shard is
/// dropped. Loads a snapshot first (retrying while the directory is
/// unreachable), then applies changes from its revision.
pub async fn run(shard: Weak<Shard>, dir: std::sync::Arc<dyn Directory>) {
    let mut delay = Duration::from_millis(50);
    let revision = loop {
        let Some(s) = shard.upgrade() else { return };
        match load(&s, dir.as_ref()).await {
            Ok(rev) => break rev,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load global data from the directory; retrying");
                drop(s);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    if let Some(s) = shard.upgrade() {
        s.mirror.set(revision);
        s.mirror.loaded.store(true, Ordering::Release);
        tracing::info!(revision, "global data mirrored from the directory");
    }
    let mut changes = loop {
        match dir.kv(Bucket::Global).watch_from(revision).await {
            Ok(stream) => break stream,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch global data; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    while let Some(change) = changes.next().await {
        let Some(s) = shard.upgrade() else { return };
        let mut attempt = Duration::from_millis(50);
        loop {
            match apply_change(&s, &change.key, change.value.as_deref()).await {
                Ok(()) => break,
                Err(StoreError::Backend(e)) => {
                    tracing::warn!(error = %e, key = %change.key, "mirroring a global change failed; retrying");
                    tokio::time::sleep(attempt).await;
                    attempt = (attempt * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::warn!(error = %e, key = %change.key, "global change not applicable locally; skipped");
                    break;
                }
            }
        }
        if let Err(e) = s.reload_global().await {
            tracing::warn!(error = %e, "reloading global data failed");
        }
        s.mirror.set(change.revision);
    }
}

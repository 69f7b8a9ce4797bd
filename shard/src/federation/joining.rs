//! Placement while a member is joining.
//!
//! The ring ignores where a tenant lives: when a joining member turns
//! `active`, every existing tenant the new ring assigns to it would be
//! routed there though its data has not moved. Until tenant moves exist,
//! the joiner pins each such tenant to its current owner before it turns
//! active ([`super::activation`]). Two things keep that exact:
//!
//! - while any member is `joining`, a shard creating a project or user
//!   that the ring *with the joiners* would assign to a joiner pins it to
//!   itself first (pins bucket, `create`), so entities created during the
//!   join need no enumeration;
//! - a shard lists its entities for a joiner only once its view has the
//!   joiner, and after a barrier ([`PlacementGate::barrier`]) that waits
//!   for every creation that began before — so any creation the listing
//!   misses saw the joiner and pinned itself.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use keyfed_directory::{Bucket, DirectoryError, Kv};
use keyfed_shared::federation::MemberStatus;
use keyfed_shared::ids::ShardId;
use keyfed_shared::ring::Ring;
use tokio::sync::{OwnedRwLockReadGuard, RwLock};

use super::Federated;

/// Creations hold it shared from their placement check to their store
/// write; a listing for a joiner takes it exclusively, once, as a barrier.
/// It can also be closed for a while (a member being retired): creations
/// entering it are then refused.
#[derive(Debug, Default, Clone)]
pub struct PlacementGate {
    lock: Arc<RwLock<()>>,
    /// Unix milliseconds until which creations are refused (0: open).
    closed_until: Arc<AtomicI64>,
}

/// Held by a creation until its entity is stored.
pub type Placement = OwnedRwLockReadGuard<()>;

impl PlacementGate {
    /// Enters a creation.
    pub async fn enter(&self) -> Placement {
        self.lock.clone().read_owned().await
    }

    /// Waits until every creation that entered before has finished.
    pub async fn barrier(&self) {
        drop(self.lock.write().await);
    }

    /// Refuses creations until `until_ms` (unix milliseconds), then waits
    /// for those already past their check: once it returns, no creation
    /// is in flight and none starts until then (or [`Self::reopen`]).
    pub async fn close_until(&self, until_ms: i64) {
        self.closed_until.store(until_ms, Ordering::SeqCst);
        self.barrier().await;
    }

    /// Accepts creations again.
    pub fn reopen(&self) {
        self.closed_until.store(0, Ordering::SeqCst);
    }

    /// Whether creations are refused at `now_ms`. Check it after
    /// [`Self::enter`], so that [`Self::close_until`]'s barrier covers
    /// every creation that saw the gate open.
    pub fn is_closed(&self, now_ms: i64) -> bool {
        now_ms < self.closed_until.load(Ordering::SeqCst)
    }
}

/// Why a pin for a joiner could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// Another member holds the pin.
    #[error("pinned to {0}")]
    Elsewhere(ShardId),
    /// The directory failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// The ring over the active and joining members, when any is joining.
pub fn ring_with_joiners(f: &Federated) -> Option<Ring> {
    let members = f.view.members();
    if !members.iter().any(|m| m.status == MemberStatus::Joining) {
        return None;
    }
    let weights: Vec<(ShardId, u32)> = members
        .iter()
        .filter(|m| matches!(m.status, MemberStatus::Active | MemberStatus::Joining))
        .map(|m| (m.id.clone(), m.weight))
        .collect();
    Ring::new(&weights).ok()
}

/// Pins `key` (`project/<id>` or `user/<id>`) to `owner`; a pin already
/// naming `owner` is fine.
pub async fn pin(pins: &dyn Kv, key: &str, owner: &ShardId) -> Result<(), PinError> {
    match pins
        .create(key, Bytes::from(owner.as_str().to_owned()))
        .await
    {
        Ok(_) => Ok(()),
        Err(DirectoryError::AlreadyExists) => {
            let current = pins
                .get(key)
                .await?
                .map(|e| String::from_utf8_lossy(&e.value).into_owned());
            match current {
                Some(s) if s == owner.as_str() => Ok(()),
                Some(s) => Err(PinError::Elsewhere(ShardId::new(s))),
                None => Err(DirectoryError::WrongRevision.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// For a creation on `me` of the entity `key` whose ring key is `id`: pins
/// it to `me` when a joining member would otherwise take it on activation.
pub async fn pin_if_a_joiner_would_take(
    f: &Federated,
    me: &ShardId,
    key: &str,
    id: &str,
) -> Result<(), PinError> {
    let Some(ring) = ring_with_joiners(f) else {
        return Ok(());
    };
    let future = ring.owner(id);
    let joining = f
        .view
        .member(future)
        .is_some_and(|m| m.status == MemberStatus::Joining);
    if future != me && joining {
        pin(f.directory.kv(Bucket::Pins).as_ref(), key, me).await?;
        tracing::info!(entity = key, joiner = %future, "pinned here while a member joins");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use keyfed_directory::{EmbeddedConfig, EmbeddedDirectory};
    use std::time::Duration;

    #[tokio::test]
    async fn pins_are_created_once_and_never_moved() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = EmbeddedDirectory::open(&EmbeddedConfig::new(tmp.path())).unwrap();
        let pins = keyfed_directory::Directory::kv(&dir, Bucket::Pins);
        let (a, b) = (ShardId::new("a"), ShardId::new("b"));
        pin(pins.as_ref(), "project/p1", &a).await.unwrap();
        pin(pins.as_ref(), "project/p1", &a).await.unwrap();
        let moved = pin(pins.as_ref(), "project/p1", &b).await;
        assert!(matches!(moved, Err(PinError::Elsewhere(s)) if s == a));
        let value = pins.get("project/p1").await.unwrap().unwrap().value;
        assert_eq!(&value[..], b"a");
    }

    #[tokio::test]
    async fn the_barrier_waits_for_creations_already_placed() {
        let gate = PlacementGate::default();
        let placed = gate.enter().await;
        let barrier = tokio::spawn({
            let gate = gate.clone();
            async move { gate.barrier().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !barrier.is_finished(),
            "the barrier passed a creation in flight"
        );
        drop(placed);
        tokio::time::timeout(Duration::from_secs(5), barrier)
            .await
            .unwrap()
            .unwrap();
        // Creations enter again afterwards.
        drop(gate.enter().await);
    }

    #[tokio::test]
    async fn a_closed_gate_waits_for_creations_in_flight_and_reopens() {
        let gate = PlacementGate::default();
        assert!(!gate.is_closed(1_000));
        let placed = gate.enter().await;
        let closing = tokio::spawn({
            let gate = gate.clone();
            async move { gate.close_until(5_000).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!closing.is_finished(), "closed over a creation in flight");
        assert!(gate.is_closed(1_000), "closed at once for new creations");
        drop(placed);
        tokio::time::timeout(Duration::from_secs(5), closing)
            .await
            .unwrap()
            .unwrap();
        assert!(gate.is_closed(4_999));
        assert!(!gate.is_closed(5_000), "closed for a bounded time");
        gate.reopen();
        assert!(!gate.is_closed(1_000));
    }
}
